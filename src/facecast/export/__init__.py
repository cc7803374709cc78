"""Writers for animation results."""
