"""End-of-study work, above the report: the finish step the CLI and the API call once a
study's runs are done (the report, a tuning study's outputs), the study-level W&B run, the
W&B Report and the upload of offline runs."""
