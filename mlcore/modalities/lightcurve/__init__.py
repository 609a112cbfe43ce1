"""Light curves: `rules` (torch-free record rules), `view` (torch-free), `featurizer` (torch)."""
