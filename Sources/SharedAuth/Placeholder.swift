enum _PlaceholderSharedAuth {}
