DROP INDEX request_log_class;
DROP INDEX request_log_model;
DROP INDEX request_log_access_key;
