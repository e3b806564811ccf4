"""spot_edge.training"""
