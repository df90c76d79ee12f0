"""Wire protocol adapters: each turns bytes into neutral events and back."""
