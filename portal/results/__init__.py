"""What jobs produce: metric points, artifacts and the final result."""
