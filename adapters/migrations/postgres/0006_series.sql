-- No schema change: this migration marks the release whose log may hold conferences in a series
-- (`ConferenceScheduled.series`). A node of an earlier release would read such events without
-- their series — its projector writing views and listings that lose it, past its checkpoint —
-- so an unknown migration makes such a node refuse to start: the upgrade stops every node first.
COMMENT ON TABLE events IS 'meetline event log; since migration 0006 conferences may belong to a series';
