"""gateway/app"""
