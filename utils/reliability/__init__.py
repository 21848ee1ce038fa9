"""Circuit breakers, rate limiters and graceful shutdown shared by the bot's services."""
