"""One asset at a time: its detail, its original file, its thumbnail, browsing and edits;
and counts over the whole catalogue."""
