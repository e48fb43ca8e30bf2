"""Strategies shipped with btledger, found by name through `btledger.engine.registry`.

Every public `backtesting.Strategy` subclass defined in a module of this package is registered under
its class name; most build on `btledger.engine.sizing.RiskSizedStrategy`.
"""
