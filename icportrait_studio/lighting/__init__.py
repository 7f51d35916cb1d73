"""lighting package."""
