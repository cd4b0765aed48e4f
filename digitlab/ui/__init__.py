"""The only Streamlit-aware part of DigitLab: state, sidebar and job panels shared by the pages."""
