"""Streamlit widgets shared by the pages: the only library package that imports streamlit."""
