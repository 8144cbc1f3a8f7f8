-- Databases of the topology on one PostgreSQL: the knnclip catalog (and its advisory locks),
-- MLflow's backend store, Prefect's database.
CREATE DATABASE catalog;
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
