"""Long-term memory: what the bot remembers across conversations, per guild or DM.

`service.MemoryService` is the facade the Bot owns; the modules beside it hold the
parts (SQLite store, FAISS index, embedder, scoring, chunking, consolidation).
"""
