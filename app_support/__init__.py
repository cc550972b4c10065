"""Streamlit-specific helpers of the lab app (the only package besides pages/ that imports streamlit).

* :mod:`app_support.resources`: ``st.cache_resource`` (corpora, encoders, pools) and
  ``st.cache_data`` (results) wrappers around :mod:`nps`.
* :mod:`app_support.ui`: error display, long-running work with progress and stop,
  record registry, downloads.
* :mod:`app_support.views`: overlays, honesty panel, pixel tracing; :mod:`app_support.replay_view`: the replay.
* :mod:`app_support.sidebar`: the shared sidebar and its query-string mirror.
"""
