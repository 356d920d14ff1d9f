"""The arena's votes: the database schema and its migrations, and the vote exports that ``tanuki
eval ratings`` reads (apart from the web app, so the ratings do not depend on it)."""
