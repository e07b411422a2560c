"""Result rows (one Parquet row per run x task x metric), their aggregation, plots and the `results` command."""
