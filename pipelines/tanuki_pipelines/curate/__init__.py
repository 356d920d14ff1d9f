"""``tanuki curate``: a human corpus cleaned and deduplicated at corpus scale, in stages whose state
lives in files."""
