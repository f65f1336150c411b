"""Where the parts are wired together: sessions, run configurations, resume,
reconciliation, summaries and the algorithm comparison."""
