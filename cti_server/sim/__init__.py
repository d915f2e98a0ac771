"""Customers and agents without phones, through real Asterisk: the simulation, realistic traffic
(arrivals, callers, personas, a plan and its runner) and the demo.

``simulation`` (simulated customers and agents on real Asterisk), ``arrivals`` (realistic
arrival times), ``callers`` and ``personas`` (who calls and what they say), ``plan`` and
``runner`` (a day of traffic planned and run), ``demo`` (the demo call center).
"""
