"""spot_edge.engines"""
