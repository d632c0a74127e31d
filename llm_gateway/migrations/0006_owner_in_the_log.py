"""The key's owner, as it was, on each request-log row and daily rollup (as the team): a
report by owner no longer follows the key to its owner of today, nor loses a deleted key's.
The rollups written before are filled from their keys' owners; the request log's older
rows keep an empty owner (a table that may hold a hundred million rows is not rewritten
by a migration)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def owners_of_the_rollups(apps, schema_editor):
    ApiKey = apps.get_model("llm_gateway", "ApiKey")
    UsageDaily = apps.get_model("llm_gateway", "UsageDaily")
    username = get_user_model().USERNAME_FIELD
    owner = ApiKey.objects.filter(pk=OuterRef("key_id")).values(f"owner__{username}")[:1]
    UsageDaily.objects.filter(key__owner__isnull=False).update(owner=Subquery(owner))


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("llm_gateway", "0005_teams_and_prices"),
    ]

    operations = [
        migrations.AddField(
            model_name="requestlog",
            name="owner",
            field=models.CharField(blank=True, default="", max_length=150),
        ),
        migrations.AddField(
            model_name="usagedaily",
            name="owner",
            field=models.CharField(blank=True, default="", max_length=150),
        ),
        migrations.RunPython(owners_of_the_rollups, migrations.RunPython.noop),
    ]
