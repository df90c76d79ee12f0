"""gateway/store"""
