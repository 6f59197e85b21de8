"""Online serving: predictor, feature store, recommender pipeline, HTTP app and hot model swaps."""
