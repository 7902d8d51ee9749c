# language: sv
@criterion:clin-registration @system:new @needs:web_base @needs:fhir_base @writes @per_site
Egenskap: Registrering och inskrivning i webbklienten
  Akutmottagningen registrerar patienter som går att identifiera på personnummer, och
  patienter som inte går att identifiera under ett reservnummer (VGR: ÅÅÅÅMMDD, K/M/X och
  tre siffror, till exempel 19810829M071). Den okända patienten skrivs sedan in på platsen.
  Bara planens testidentiteter och reservnummer som repetitionen själv skapar får
  förekomma (se Repetitionen rör bara testidentiteter).

  @id:klin-registration-01
  Scenario: En känd och en okänd patient registreras och den okända skrivs in på akuten
    Givet att en användare på platsen är inloggad i webbklienten
    När användaren registrerar platsens testpatient på personnummer
    Så visas patientens journal med namn och personnummer enligt planen
    Och hittas patienten när användaren söker på personnumret
    När användaren registrerar en okänd man med ett uppskattat födelsedatum
    Så får patienten ett giltigt reservnummer för en man med det födelsedatumet
    Och hittas patienten när användaren söker på reservnumret
    När användaren skriver in patienten med vårdformen "Akut"
    Så visas vårdkontakten "Akut" på platsen i patientens vårdkontakter
