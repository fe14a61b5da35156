"""Devices and precision, FLOP formulas and the memory meter: what every layer above runs on."""
