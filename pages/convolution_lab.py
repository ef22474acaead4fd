import streamlit as st

st.title("convolution_lab")
