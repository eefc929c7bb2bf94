"""The phonetic decision tree: statistics (:mod:`.stats`), questions (:mod:`.questions`), the tree and its
Kaldi file format (:mod:`.event_map`), building it (:mod:`.build`)."""
