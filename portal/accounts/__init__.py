"""Users, labs and memberships (roles owner / member / viewer)."""
