"""Small pieces shared by the portal apps (errors, storage helpers)."""
