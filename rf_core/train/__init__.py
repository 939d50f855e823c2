"""What any trainer shares: example selection (rf-filter, rf-inject) and rf-train's defaults."""
