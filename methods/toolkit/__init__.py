"""The toolkit methods share: networks, the neighbour index, optimisers and schedules, views."""
