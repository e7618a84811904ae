DROP TABLE access_keys;
DROP TABLE admins;
DROP TABLE settings;
