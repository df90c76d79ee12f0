"""gateway/admin"""
