"""``tanuki arena serve``: the blind side-by-side chat page where people vote (see ``app``)."""
