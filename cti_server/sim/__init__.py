"""Customers and agents without phones, through real Asterisk: the simulation, realistic traffic
(arrivals, callers, personas, a plan and its runner) and the demo."""
