"""Long-term memory: what the bot remembers across conversations, per guild or DM.

`service.MemoryService` is the facade the Bot owns, composed of parts with one job each:
`indexer` (remembering conversation), `recall` (finding memories, returned as data),
`consolidation` (facts from the chat log, read through `chatlog.ChatLog`), `lifecycle`
(the model and background tasks) and `writer` (every write), built from `config`. Beside
them: the store (with its keyword index for each database backend), FAISS indexes,
embedder, scoring and chunking; `stored.StoredMemories` deletes memories while memory is off.
"""
