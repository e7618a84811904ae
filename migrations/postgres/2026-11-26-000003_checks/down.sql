DROP TABLE leases;
DROP TABLE balance_history;
