-- skiff `mariadb` layer: run by mariadbd at every start (--init-file).
CREATE DATABASE IF NOT EXISTS skiff;
CREATE USER IF NOT EXISTS 'skiff'@'%' IDENTIFIED BY 'skiff';
CREATE USER IF NOT EXISTS 'skiff'@'localhost' IDENTIFIED BY 'skiff';
GRANT ALL PRIVILEGES ON skiff.* TO 'skiff'@'%';
GRANT ALL PRIVILEGES ON skiff.* TO 'skiff'@'localhost';
