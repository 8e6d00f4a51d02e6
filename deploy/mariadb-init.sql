-- Run once by the mariadb image on an empty data volume (docker-compose.yml mounts it into
-- /docker-entrypoint-initdb.d). One database per service, as the architecture wants; the image
-- has already created the `soulchat` user from MARIADB_USER/MARIADB_PASSWORD. Each worker applies
-- its own migrations at start.
CREATE DATABASE IF NOT EXISTS user_service CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS profile_service CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS chat_service CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS notification_service CHARACTER SET utf8mb4;

GRANT ALL PRIVILEGES ON user_service.* TO 'soulchat'@'%';
GRANT ALL PRIVILEGES ON profile_service.* TO 'soulchat'@'%';
GRANT ALL PRIVILEGES ON chat_service.* TO 'soulchat'@'%';
GRANT ALL PRIVILEGES ON notification_service.* TO 'soulchat'@'%';
FLUSH PRIVILEGES;
