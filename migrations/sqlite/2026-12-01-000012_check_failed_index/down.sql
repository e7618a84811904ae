DROP INDEX keys_check_failed;
