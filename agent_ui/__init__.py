"""The agent desktop and the supervisor's wallboard: aiohttp pages and one websocket per browser."""
