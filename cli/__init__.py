"""spot_edge.cli"""
