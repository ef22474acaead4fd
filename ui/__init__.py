"""Page-side helpers: Streamlit widgets, caching and session-state keys shared by pages.

Only pages and ``app.py`` import this package; ``cnnlib`` never does.
"""
