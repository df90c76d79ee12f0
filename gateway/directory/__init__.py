"""gateway/directory"""
