"""The Convolution lab's "predict the output size" quiz: one question, the learner's H′×W′,
the verdict (with the worked formula when wrong), the session's score and a link that
shares the question.

Questions, answers and the score come from ``cnnlib.conv.quiz``. The question lives in the URL
(``quiz_h``, ``quiz_w``, … beside the lab's own parameters) once the learner has used the
quiz or arrived by a shared link, so the address bar always shares the question shown.
"""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import streamlit as st

from cnnlib.conv import quiz
from cnnlib.core.errors import CNNLabError
from cnnlib.core.text import safe_text
from ui.code_text import show_code_lines

ss = st.session_state
PREFIX = quiz.QUERY_PREFIX


def _share(q: quiz.Question) -> None:
    """Write ``q`` to the URL (only the quiz's own parameters change)."""
    for name, value in quiz.question_to_query(q, PREFIX).items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value


def _start() -> None:
    """Once per session: the question from a shared link, else a random one; a short,
    escaped notice when the link's question cannot be used."""
    if "quiz_q" in ss:
        return
    ss.quiz_score, ss.quiz_verdict, ss.quiz_notice = quiz.Score(), None, None
    params = st.query_params.to_dict()
    if any(name in params for name in quiz.query_keys(PREFIX)):
        try:
            ss.quiz_q = quiz.question_from_query(params, PREFIX)
            return
        except CNNLabError as err:
            ss.quiz_notice = (
                f"The link's quiz question was not used ({safe_text(err, 140)}); here is a new one."
            )
    ss.quiz_q = quiz.new_question(np.random.default_rng())


def _on_check() -> None:
    try:
        verdict = quiz.check_answer(ss.quiz_q, ss.get("quiz_answer") or "")
    except CNNLabError as err:
        ss.quiz_msg = str(err)
        return
    ss.quiz_verdict = verdict
    ss.quiz_score = ss.quiz_score.record(verdict.correct)
    _share(ss.quiz_q)


def _on_new() -> None:
    ss.quiz_q = quiz.new_question(np.random.default_rng())
    ss.quiz_verdict, ss.quiz_notice, ss.quiz_answer = None, None, ""
    _share(ss.quiz_q)


def show_verdict(v: quiz.Verdict) -> None:
    """Right, or wrong with the worked formula for each axis (and the "same" rule, and what
    the floor drops)."""
    h, w = v.expected
    if v.correct:
        st.success(f"Right: the output is **{h}×{w}**.", icon=":material/check_circle:")
        return
    st.error(
        f"Not quite: you said {v.given[0]}×{v.given[1]}, the output is **{h}×{w}**. "
        "Worked out, height then width:",
        icon=":material/cancel:",
    )
    for latex in (*v.worked, *v.same_rule):
        st.latex(latex)
    for text in v.dropped:
        st.info(text, icon=":material/content_cut:")


@st.fragment
def quiz_section() -> None:
    """The whole quiz (a fragment: answering reruns only this)."""
    _start()
    if ss.quiz_notice:
        st.warning(ss.quiz_notice, icon=":material/link:")
    q = ss.quiz_q
    st.markdown(f"**Question:** {q.text()}. What is the output size **H′×W′**?")
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    c1.text_input("Your answer H′×W′", key="quiz_answer", placeholder="e.g. 13x13", max_chars=40)
    c2.button("Check", icon=":material/done:", key="quiz_check", on_click=_on_check)
    c3.button("New question", icon=":material/refresh:", key="quiz_new", on_click=_on_new)
    if msg := ss.pop("quiz_msg", None):
        st.error(msg, icon=":material/warning:")
    elif ss.quiz_verdict is not None:
        show_verdict(ss.quiz_verdict)
    st.markdown(
        f"**Score this session:** {ss.quiz_score.text()} (best streak {ss.quiz_score.best_streak})."
    )
    link = urlencode(quiz.question_to_query(q, PREFIX))
    st.caption(
        ":material/link: Share this question: once you check an answer or ask for a new one, "
        "the address bar holds it. Its link parameters:"
    )
    show_code_lines([f"?{link}"])
