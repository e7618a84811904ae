DROP TABLE key_events;
DROP TABLE pool_snapshots;
