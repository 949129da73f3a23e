"""The web dashboard: server-rendered pages (templates/ui/app/) for reps, managers, marketers and admins.

Pages call the same services as the REST API and apply the same role rules; they are not in the OpenAPI.
"""
