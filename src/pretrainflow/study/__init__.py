"""A study: its file loaded, validated and expanded (``load``), and ``layout``, the home of every results/ path."""
