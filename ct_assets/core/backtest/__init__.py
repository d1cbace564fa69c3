"""Policy backtesting: replay a stream through the live policy, training and gate code (pure, no Dagster)."""
