"""The web kit every service uses: errors, pagination, health, metrics, request ids, rate limits."""
