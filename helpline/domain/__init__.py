"""The domain: who may do what to which conversation, independent of HTTP and of the database."""
