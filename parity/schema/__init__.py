"""Schema: reflect tables, map their types, plan and apply the DDL that makes a target hold them."""
