"""Reports: the HTML page and the view of one customer."""
