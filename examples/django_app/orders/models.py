from django.db import models


class Order(models.Model):
    email = models.EmailField()
    cents = models.PositiveIntegerField()
    status = models.CharField(max_length=20, default="new")
